drop function if exists app.publish_ticket_notice(uuid, text, text);
drop function if exists app.sweep_sla_breaches();
drop index if exists public.tickets_municipality_updated_idx;
drop index if exists public.tickets_municipality_sla_idx;
