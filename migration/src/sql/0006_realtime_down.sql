alter policy tickets_select on public.tickets
  using (municipality_id = (select app.current_municipality_id())
         and (reporter_id = (select app.current_profile_id())
              or (assignee_id = (select app.current_profile_id()) and not is_sensitive)
              or (select app.current_app_role()) in ('manager', 'saps_liaison', 'admin')));
drop function if exists app.ticket_visible_to(uuid, uuid, uuid, boolean, uuid, text, uuid);
