-- Undoes 0009's guards and policy changes. `app.verified_contact` stays: `app.link_profile`
-- (replaced in 0009) reads the caller's contacts through it.
drop trigger if exists guard_photo on public.photos;
drop function if exists app.guard_photo();
drop function if exists app.object_withheld(text, text, timestamptz);
alter policy media_select on public.media
  using (exists (select 1 from public.tickets t where t.id = media.ticket_id)
         and (bucket <> 'gbv-evidence'
              or (select app.current_app_role()) in ('saps_liaison', 'admin')));
drop trigger if exists guard_media_insert on public.media;
drop function if exists app.guard_media_insert();
drop trigger if exists guard_upload_intent on public.upload_intents;
drop function if exists app.guard_upload_intent();
drop function if exists app.max_upload_bytes(text);
drop trigger if exists guard_ticket_event_insert on public.ticket_events;
drop function if exists app.guard_ticket_event_insert();
alter policy tickets_update_saps on public.tickets
  with check (municipality_id = (select app.current_municipality_id()) and is_sensitive);
drop trigger if exists guard_ticket_update on public.tickets;
drop function if exists app.guard_ticket_update();
drop trigger if exists guard_ticket_insert on public.tickets;
drop function if exists app.guard_ticket_insert();
drop trigger if exists announce_profile_delete on public.profiles;
drop trigger if exists announce_profile_change on public.profiles;
drop function if exists app.announce_profile_change();
drop trigger if exists guard_profile_contact on public.profiles;
drop function if exists app.guard_profile_contact();
drop function if exists app.ticket_transition_allowed(text, text);
drop function if exists app.may_be_assigned(uuid, uuid);
drop function if exists app.ticket_event_payload(public.tickets, text, text);
drop function if exists app.is_request_role();
