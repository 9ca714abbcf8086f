drop table if exists public.media, public.upload_intents, public.ticket_events,
  public.ticket_counters, public.tickets, public.photos, public.profiles, public.wards,
  public.municipalities cascade;
drop function if exists public.notify_ticket_update() cascade;
drop schema if exists app cascade;
