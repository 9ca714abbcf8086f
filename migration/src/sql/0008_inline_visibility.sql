-- PostgreSQL inlines a SQL function into the query that calls it only when the function has
-- no SET clause and uses a parameter more than once only if its argument is cheap; the
-- policy's arguments are `(select app.current_...())` sub-selects, which do not count as
-- cheap. So: no SET clause (the body refers to no table or function, search_path cannot
-- matter) and every parameter used once. Inlined, the tickets policy shows the planner
-- `municipality_id = <caller's>`, and a page of tickets reads its rows through an index
-- instead of calling a function for every ticket of the municipality.
create or replace function app.ticket_visible_to(
  p_municipality uuid, p_reporter uuid, p_assignee uuid, p_sensitive boolean,
  viewer_profile uuid, viewer_role text, viewer_municipality uuid
) returns boolean
  language sql immutable
  as $$
    select p_municipality = viewer_municipality
       and (viewer_role in ('manager', 'saps_liaison', 'admin')
            or viewer_profile = any (array[p_reporter, case when not p_sensitive then p_assignee end]))
  $$;
