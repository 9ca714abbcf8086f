-- What live updates need from the database:
-- 1. One definition of who may see a ticket, used by the tickets policy and by the realtime
--    fan-out (which asks it for many subscribers in one statement).
-- 2. Ticket events committed in id order within a municipality, so "everything after event N"
--    is a complete answer: writers of a municipality's events take a transaction-level lock
--    from the event's insert until commit.

create function app.ticket_visible_to(
  p_municipality uuid, p_reporter uuid, p_assignee uuid, p_sensitive boolean,
  viewer_profile uuid, viewer_role text, viewer_municipality uuid
) returns boolean
  language sql immutable set search_path = ''
  as $$
    select p_municipality = viewer_municipality
       and (p_reporter = viewer_profile
            or (p_assignee = viewer_profile and not p_sensitive)
            or viewer_role in ('manager', 'saps_liaison', 'admin'))
  $$;
grant execute on function app.ticket_visible_to(uuid, uuid, uuid, boolean, uuid, text, uuid)
  to anon, authenticated, service_role;

-- A NULL (unknown caller) counts as false in a policy. The function is inlined, so the
-- planner still sees `municipality_id = <caller's>` and uses the municipality indexes.
alter policy tickets_select on public.tickets
  using (app.ticket_visible_to(
           municipality_id, reporter_id, assignee_id, is_sensitive,
           (select app.current_profile_id()),
           (select app.current_app_role()),
           (select app.current_municipality_id())));

create function app.lock_ticket_events(p_municipality uuid) returns void
  language sql volatile set search_path = ''
  as $$ select pg_advisory_xact_lock(hashtextextended('ward.ticket_events:' || p_municipality::text, 0)) $$;
grant execute on function app.lock_ticket_events(uuid) to authenticated, service_role;

create or replace function public.notify_ticket_update() returns trigger
  language plpgsql security definer set search_path = ''
  as $$
  declare
    v_kind text := case tg_op when 'INSERT' then 'CREATED' else 'UPDATED' end;
    v_payload jsonb;
    v_event_id bigint;
  begin
    perform app.lock_ticket_events(new.municipality_id);
    v_payload := jsonb_build_object(
      'type', v_kind,
      'ticket_id', new.id,
      'tracking_number', new.tracking_number,
      'status', new.status,
      'category', new.category,
      'municipality_id', new.municipality_id,
      'ward_id', new.ward_id,
      'is_sensitive', new.is_sensitive,
      'updated_at', new.updated_at);
    insert into public.ticket_events (ticket_id, municipality_id, kind, status, actor_profile_id, message, payload)
      values (new.id, new.municipality_id, v_kind, new.status, app.current_profile_id(),
              nullif(current_setting('ward.event_note', true), ''), v_payload)
      returning id into v_event_id;
    perform pg_notify(
      'ticket_updates:' || new.municipality_id::text,
      (v_payload || jsonb_build_object('event_id', v_event_id))::text);
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
    v_payload := jsonb_build_object(
      'type', 'NOTICE',
      'ticket_id', t.id,
      'tracking_number', t.tracking_number,
      'status', t.status,
      'category', t.category,
      'municipality_id', t.municipality_id,
      'ward_id', t.ward_id,
      'is_sensitive', t.is_sensitive,
      'updated_at', t.updated_at,
      'notice_kind', p_kind);
    insert into public.ticket_events (ticket_id, municipality_id, kind, notice_kind, message, status, actor_profile_id, payload)
      values (t.id, t.municipality_id, 'NOTICE', p_kind, p_message, t.status, app.current_profile_id(), v_payload)
      returning id into v_event_id;
    perform pg_notify(
      'ticket_updates:' || t.municipality_id::text,
      (v_payload || jsonb_build_object('event_id', v_event_id))::text);
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
             t.status,
             jsonb_build_object(
               'type', 'NOTICE', 'ticket_id', t.id, 'tracking_number', t.tracking_number,
               'status', t.status, 'category', t.category, 'municipality_id', t.municipality_id,
               'ward_id', t.ward_id, 'is_sensitive', t.is_sensitive, 'updated_at', t.updated_at,
               'notice_kind', 'SLA_BREACHED')
      from public.tickets t
      where t.status in ('OPEN', 'IN_PROGRESS')
        and t.sla_due_at < now()
        and not exists (select 1 from public.ticket_events e
                        where e.ticket_id = t.id and e.notice_kind = 'SLA_BREACHED')
      order by t.municipality_id, t.id
      on conflict (ticket_id) where notice_kind = 'SLA_BREACHED' do nothing
      returning id, municipality_id, payload
    loop
      perform pg_notify(
        'ticket_updates:' || r.municipality_id::text,
        (r.payload || jsonb_build_object('event_id', r.id))::text);
      n := n + 1;
    end loop;
    return n;
  end
  $$;
