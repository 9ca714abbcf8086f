-- The ticket workflow's database side: notes on status changes, notices (people's and the SLA
-- sweeper's), each recorded in ticket_events and announced like the trigger's own events.

-- A status change may carry a note: the request sets `ward.event_note` for its transaction and
-- the trigger records it as the event's message.
create or replace function public.notify_ticket_update() returns trigger
  language plpgsql security definer set search_path = ''
  as $$
  declare
    v_kind text := case tg_op when 'INSERT' then 'CREATED' else 'UPDATED' end;
    v_payload jsonb;
    v_event_id bigint;
  begin
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

-- A notice on a ticket the caller can see, written under the caller's policies (managers and
-- admins, or the service role) and announced on the municipality's channel.
create function app.publish_ticket_notice(p_ticket uuid, p_kind text, p_message text)
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
grant execute on function app.publish_ticket_notice(uuid, text, text) to authenticated, service_role;

-- One SLA_BREACHED notice per open ticket past its due time. Safe with several servers
-- sweeping at once: the partial unique index lets exactly one insert per ticket win.
create function app.sweep_sla_breaches() returns integer
  language plpgsql volatile set search_path = ''
  as $$
  declare
    r record;
    n integer := 0;
  begin
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
revoke all on function app.sweep_sla_breaches() from public;
grant execute on function app.sweep_sla_breaches() to service_role;

-- Listing a municipality's tickets by last change, and the open ones by due time.
create index tickets_municipality_updated_idx on public.tickets (municipality_id, updated_at desc, id desc);
create index tickets_municipality_sla_idx on public.tickets (municipality_id, sla_due_at, id);
