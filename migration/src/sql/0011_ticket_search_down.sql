-- pg_trgm stays: other schemas may use it.
drop function if exists app.search_ticket_ids(text);
drop index if exists public.tickets_description_trgm_idx;
drop index if exists public.tickets_title_trgm_idx;
