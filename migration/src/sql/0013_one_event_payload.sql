-- One definition of a ticket event's payload.
--
-- The payload recorded with a ticket event and announced on `ticket_updates:<municipality>`
-- was spelled out in every event writer: the ticket trigger, the notice function and the SLA
-- sweeper (as 0006 left them), and since 0009 in `app.ticket_event_payload`, which the guard on
-- direct inserts uses. The writers now call that function too, so a field added to the
-- payload is added once. The payloads are the same as before (jsonb has no key order;
-- `notice_kind` appears on notices only).

-- Announces a recorded event to the realtime listeners: its payload and its id.
create or replace function app.announce_ticket_event(p_municipality uuid, p_event_id bigint, p_payload jsonb)
  returns void
  language sql volatile set search_path = ''
  as $$
    select pg_notify('ticket_updates:' || p_municipality::text,
                     (p_payload || jsonb_build_object('event_id', p_event_id))::text)
  $$;
-- Callable by whoever records events (the notice function runs as its caller); it gives no
-- power pg_notify does not already give every role, and the realtime hub reads each announced
-- event back from ticket_events rather than trusting the notification.
revoke all on function app.announce_ticket_event(uuid, bigint, jsonb) from public;
grant execute on function app.announce_ticket_event(uuid, bigint, jsonb) to authenticated, service_role;

create or replace function public.notify_ticket_update() returns trigger
  language plpgsql security definer set search_path = ''
  as $$
  declare
    v_kind text := case tg_op when 'INSERT' then 'CREATED' else 'UPDATED' end;
    v_payload jsonb := app.ticket_event_payload(new, v_kind, null);
    v_event_id bigint;
  begin
    perform app.lock_ticket_events(new.municipality_id);
    insert into public.ticket_events (ticket_id, municipality_id, kind, status, actor_profile_id, message, payload)
      values (new.id, new.municipality_id, v_kind, new.status, app.current_profile_id(),
              nullif(current_setting('ward.event_note', true), ''), v_payload)
      returning id into v_event_id;
    perform app.announce_ticket_event(new.municipality_id, v_event_id, v_payload);
    return null;
  end
  $$;

create or replace function app.publish_ticket_notice(p_ticket uuid, p_kind text, p_message text)
  returns bigint
  language plpgsql volatile set search_path = ''
  as $$
  declare
    t public.tickets;
    v_payload jsonb;
    v_event_id bigint;
  begin
    select * into t from public.tickets where id = p_ticket;
    if not found then
      raise exception 'ticket not found' using errcode = 'P0002';
    end if;
    perform app.lock_ticket_events(t.municipality_id);
    v_payload := app.ticket_event_payload(t, 'NOTICE', p_kind);
    insert into public.ticket_events (ticket_id, municipality_id, kind, notice_kind, message, status, actor_profile_id, payload)
      values (t.id, t.municipality_id, 'NOTICE', p_kind, p_message, t.status, app.current_profile_id(), v_payload)
      returning id into v_event_id;
    perform app.announce_ticket_event(t.municipality_id, v_event_id, v_payload);
    return v_event_id;
  end
  $$;

create or replace function app.sweep_sla_breaches() returns integer
  language plpgsql volatile set search_path = ''
  as $$
  declare
    r record;
    n integer := 0;
  begin
    -- Lock the municipalities concerned in a fixed order, like every other event writer.
    perform app.lock_ticket_events(m.municipality_id)
      from (select distinct t.municipality_id from public.tickets t
            where t.status in ('OPEN', 'IN_PROGRESS') and t.sla_due_at < now()
            order by 1) m;
    for r in
      insert into public.ticket_events (ticket_id, municipality_id, kind, notice_kind, message, status, payload)
      select t.id, t.municipality_id, 'NOTICE', 'SLA_BREACHED',
             'SLA due at ' || to_char(t.sla_due_at at time zone 'utc', 'YYYY-MM-DD HH24:MI') || ' UTC has passed',
             t.status, app.ticket_event_payload(t, 'NOTICE', 'SLA_BREACHED')
      from public.tickets t
      where t.status in ('OPEN', 'IN_PROGRESS')
        and t.sla_due_at < now()
        and not exists (select 1 from public.ticket_events e
                        where e.ticket_id = t.id and e.notice_kind = 'SLA_BREACHED')
      order by t.municipality_id, t.id
      on conflict (ticket_id) where notice_kind = 'SLA_BREACHED' do nothing
      returning id, municipality_id, payload
    loop
      perform app.announce_ticket_event(r.municipality_id, r.id, r.payload);
      n := n + 1;
    end loop;
    return n;
  end
  $$;
