-- ward's tables, the helpers its policies call, the policies of the "who sees what" contract
-- (docs/POLICY.md), and the triggers that keep derived columns and the ticket history.

create schema if not exists app;
grant usage on schema app to anon, authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------------------------

create table public.municipalities (
  id uuid primary key default gen_random_uuid(),
  name text not null check (length(name) between 1 and 200),
  slug text not null unique check (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table public.wards (
  id uuid primary key default gen_random_uuid(),
  municipality_id uuid not null references public.municipalities (id) on delete cascade,
  name text not null check (length(name) between 1 and 200),
  number integer check (number > 0),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (municipality_id, name),
  unique (municipality_id, id)
);

create table public.profiles (
  id uuid primary key default gen_random_uuid(),
  auth_user_id uuid unique,
  municipality_id uuid not null references public.municipalities (id),
  role text not null default 'citizen'
    check (role in ('citizen', 'field_worker', 'manager', 'saps_liaison', 'admin')),
  display_name text not null check (length(display_name) between 1 and 120),
  phone text check (phone ~ '^\+[1-9][0-9]{6,14}$'),
  email text check (email = lower(email) and length(email) <= 254 and position('@' in email) > 1),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (municipality_id, id)
);
-- One person per phone number and per email, so linking a first sign-in to a profile the relay
-- created is unambiguous.
create unique index profiles_phone_key on public.profiles (phone) where phone is not null;
create unique index profiles_email_key on public.profiles (email) where email is not null;
create index profiles_municipality_role_idx on public.profiles (municipality_id, role, id);

create table public.photos (
  id uuid primary key default gen_random_uuid(),
  profile_id uuid not null references public.profiles (id) on delete cascade,
  bucket text not null default 'user-photos' check (bucket = 'user-photos'),
  object_path text not null,
  thumbnail_path text,
  content_type text not null
    check (content_type in ('image/jpeg', 'image/png', 'image/webp', 'image/gif')),
  size_bytes bigint not null check (size_bytes > 0),
  width integer check (width > 0),
  height integer check (height > 0),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (bucket, object_path)
);
create index photos_profile_created_idx on public.photos (profile_id, created_at desc, id desc);

create table public.tickets (
  id uuid primary key default gen_random_uuid(),
  municipality_id uuid not null references public.municipalities (id),
  tracking_number text not null unique,
  category text not null
    check (category in ('WATER', 'ELECTRICITY', 'ROADS', 'WASTE', 'SAFETY', 'OTHER')),
  title text not null check (length(title) between 1 and 200),
  description text not null default '' check (length(description) <= 10000),
  status text not null default 'OPEN'
    check (status in ('OPEN', 'IN_PROGRESS', 'RESOLVED', 'CLOSED', 'REJECTED')),
  priority text not null default 'NORMAL' check (priority in ('LOW', 'NORMAL', 'HIGH', 'URGENT')),
  ward_id uuid,
  reporter_id uuid,
  assignee_id uuid,
  is_sensitive boolean not null default false,
  sla_due_at timestamptz,
  version integer not null default 1 check (version > 0),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (municipality_id, id),
  -- A ticket's ward, reporter and assignee belong to the ticket's own municipality.
  foreign key (municipality_id, ward_id) references public.wards (municipality_id, id),
  foreign key (municipality_id, reporter_id) references public.profiles (municipality_id, id),
  foreign key (municipality_id, assignee_id) references public.profiles (municipality_id, id)
);
create index tickets_municipality_created_idx on public.tickets (municipality_id, created_at desc, id desc);
create index tickets_municipality_status_idx on public.tickets (municipality_id, status);
create index tickets_reporter_idx on public.tickets (reporter_id, created_at desc);
create index tickets_assignee_idx on public.tickets (assignee_id, created_at desc);
create index tickets_ward_idx on public.tickets (ward_id);
create index tickets_sla_open_idx on public.tickets (sla_due_at)
  where status in ('OPEN', 'IN_PROGRESS');

-- Per municipality and year, the last tracking number handed out. Only the ticket trigger
-- touches it; a rolled-back insert leaves a gap, never a duplicate.
create table public.ticket_counters (
  municipality_id uuid not null references public.municipalities (id) on delete cascade,
  year integer not null,
  last_value bigint not null,
  primary key (municipality_id, year)
);

create table public.ticket_events (
  id bigint generated always as identity primary key,
  ticket_id uuid not null references public.tickets (id) on delete cascade,
  municipality_id uuid not null references public.municipalities (id),
  kind text not null check (kind in ('CREATED', 'UPDATED', 'NOTICE')),
  notice_kind text check (notice_kind ~ '^[A-Z][A-Z0-9_]{0,63}$'),
  message text check (length(message) <= 2000),
  status text not null,
  actor_profile_id uuid references public.profiles (id) on delete set null,
  payload jsonb not null,
  created_at timestamptz not null default now(),
  check ((kind = 'NOTICE') = (notice_kind is not null))
);
create index ticket_events_ticket_idx on public.ticket_events (ticket_id, id);
create index ticket_events_municipality_idx on public.ticket_events (municipality_id, id);
-- The SLA sweeper records one breach per ticket, however many servers sweep.
create unique index ticket_events_sla_breached_once on public.ticket_events (ticket_id)
  where notice_kind = 'SLA_BREACHED';

create table public.upload_intents (
  id uuid primary key default gen_random_uuid(),
  municipality_id uuid not null references public.municipalities (id),
  created_by uuid not null references public.profiles (id) on delete cascade,
  purpose text not null check (purpose in ('PHOTO', 'EVIDENCE', 'DOCUMENT', 'GBV_EVIDENCE')),
  ticket_id uuid references public.tickets (id) on delete cascade,
  bucket text not null check (bucket in ('evidence', 'documents', 'gbv-evidence', 'user-photos')),
  object_path text not null,
  filename text not null check (length(filename) between 1 and 255),
  content_type text not null,
  max_size_bytes bigint not null check (max_size_bytes > 0),
  status text not null default 'PENDING' check (status in ('PENDING', 'CONFIRMED', 'EXPIRED')),
  expires_at timestamptz not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (bucket, object_path),
  check ((purpose = 'PHOTO') = (ticket_id is null)),
  check ((purpose = 'PHOTO') = (bucket = 'user-photos')),
  check (purpose <> 'GBV_EVIDENCE' or bucket = 'gbv-evidence')
);
create index upload_intents_creator_idx on public.upload_intents (created_by, created_at desc);
create index upload_intents_ticket_idx on public.upload_intents (ticket_id);

create table public.media (
  id uuid primary key default gen_random_uuid(),
  ticket_id uuid not null,
  municipality_id uuid not null,
  purpose text not null check (purpose in ('EVIDENCE', 'DOCUMENT', 'GBV_EVIDENCE')),
  bucket text not null check (bucket in ('evidence', 'documents', 'gbv-evidence')),
  object_path text not null,
  content_type text not null,
  size_bytes bigint not null check (size_bytes >= 0),
  uploaded_by uuid references public.profiles (id) on delete set null,
  upload_intent_id uuid unique references public.upload_intents (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (bucket, object_path),
  check (purpose <> 'GBV_EVIDENCE' or bucket = 'gbv-evidence'),
  foreign key (municipality_id, ticket_id)
    references public.tickets (municipality_id, id) on delete cascade
);
create index media_ticket_idx on public.media (ticket_id, created_at, id);

-- ---------------------------------------------------------------------------------------------
-- Who is calling: the caller's profile, looked up once per statement.
-- Policies call these as `(select app.current_profile_id())` so PostgreSQL plans them as an
-- InitPlan evaluated once per statement, not once per row. SECURITY DEFINER lets them read
-- `profiles` without recursing into its own policies.
-- ---------------------------------------------------------------------------------------------

create function app.current_profile_id() returns uuid
  language sql stable security definer set search_path = ''
  as $$ select p.id from public.profiles p where p.auth_user_id = auth.uid() $$;

create function app.current_municipality_id() returns uuid
  language sql stable security definer set search_path = ''
  as $$ select p.municipality_id from public.profiles p where p.auth_user_id = auth.uid() $$;

create function app.current_app_role() returns text
  language sql stable security definer set search_path = ''
  as $$ select p.role from public.profiles p where p.auth_user_id = auth.uid() $$;

-- How long a category may stay open before its SLA is breached.
create function app.sla_interval(category text) returns interval
  language sql immutable set search_path = ''
  as $$
    select case category
      when 'SAFETY' then interval '12 hours'
      when 'ELECTRICITY' then interval '24 hours'
      when 'WATER' then interval '48 hours'
      when 'WASTE' then interval '72 hours'
      when 'ROADS' then interval '7 days'
      else interval '5 days'
    end
  $$;

create function app.next_tracking_number(p_municipality uuid) returns text
  language plpgsql volatile security definer set search_path = ''
  as $$
  declare
    v_year integer := extract(year from now() at time zone 'utc')::integer;
    v_next bigint;
    v_slug text;
  begin
    select upper(m.slug) into v_slug from public.municipalities m where m.id = p_municipality;
    if v_slug is null then
      raise exception 'unknown municipality' using errcode = '23503';
    end if;
    insert into public.ticket_counters as c (municipality_id, year, last_value)
      values (p_municipality, v_year, 1)
      on conflict (municipality_id, year) do update set last_value = c.last_value + 1
      returning c.last_value into v_next;
    return v_slug || '-' || v_year || '-' || lpad(v_next::text, 6, '0');
  end
  $$;
revoke all on function app.next_tracking_number(uuid) from public;

-- ---------------------------------------------------------------------------------------------
-- Triggers: derived columns, guards on columns that policies cannot restrict, ticket history.
-- ---------------------------------------------------------------------------------------------

create function app.touch_updated_at() returns trigger
  language plpgsql set search_path = ''
  as $$
  begin
    new.updated_at := now();
    return new;
  end
  $$;

do $$
declare
  t text;
begin
  foreach t in array array['municipalities', 'wards', 'profiles', 'photos', 'upload_intents', 'media'] loop
    execute format(
      'create trigger touch_updated_at before update on public.%I for each row execute function app.touch_updated_at()',
      t);
  end loop;
end
$$;

-- Row-level security decides which rows a caller may update, not which columns. These guards
-- hold the column rules of the contract for request roles (anon, authenticated); the service
-- role and the migration owner are trusted.
create function app.guard_profile_update() returns trigger
  language plpgsql set search_path = ''
  as $$
  declare
    v_own boolean := old.auth_user_id is not distinct from auth.uid();
  begin
    if current_user not in ('anon', 'authenticated') then
      return new;
    end if;
    if new.id <> old.id
      or new.municipality_id <> old.municipality_id
      or new.auth_user_id is distinct from old.auth_user_id
      or new.created_at <> old.created_at then
      raise exception 'a profile''s identity and municipality cannot be changed'
        using errcode = '42501';
    end if;
    if new.role <> old.role and v_own then
      raise exception 'you cannot change your own role' using errcode = '42501';
    end if;
    if not v_own and (new.display_name, new.phone, new.email)
        is distinct from (old.display_name, old.phone, old.email) then
      raise exception 'only the role of another person''s profile can be changed'
        using errcode = '42501';
    end if;
    return new;
  end
  $$;
create trigger guard_profile_update before update on public.profiles
  for each row execute function app.guard_profile_update();

create function app.prepare_ticket_insert() returns trigger
  language plpgsql security definer set search_path = ''
  as $$
  begin
    if new.tracking_number is null then
      new.tracking_number := app.next_tracking_number(new.municipality_id);
    end if;
    if new.sla_due_at is null then
      new.sla_due_at := new.created_at + app.sla_interval(new.category);
    end if;
    new.version := 1;
    return new;
  end
  $$;
create trigger prepare_ticket_insert before insert on public.tickets
  for each row execute function app.prepare_ticket_insert();

create function app.prepare_ticket_update() returns trigger
  language plpgsql set search_path = ''
  as $$
  begin
    if current_user in ('anon', 'authenticated') then
      if new.id <> old.id
        or new.municipality_id <> old.municipality_id
        or new.tracking_number <> old.tracking_number
        or new.reporter_id is distinct from old.reporter_id
        or new.created_at <> old.created_at then
        raise exception 'a ticket''s identity, municipality and reporter cannot be changed'
          using errcode = '42501';
      end if;
      -- A field worker may move the status of a ticket assigned to them, nothing else.
      if (select app.current_app_role()) = 'field_worker'
        and (new.title, new.description, new.category, new.priority, new.ward_id,
             new.assignee_id, new.is_sensitive, new.sla_due_at)
          is distinct from
            (old.title, old.description, old.category, old.priority, old.ward_id,
             old.assignee_id, old.is_sensitive, old.sla_due_at) then
        raise exception 'a field worker can change only the status of a ticket'
          using errcode = '42501';
      end if;
    end if;
    new.version := old.version + 1;
    new.updated_at := now();
    return new;
  end
  $$;
create trigger prepare_ticket_update before update on public.tickets
  for each row execute function app.prepare_ticket_update();

-- Every insert and update of a ticket is recorded in ticket_events and announced on the
-- municipality's channel; subscribers resume from ticket_events after a gap.
create function public.notify_ticket_update() returns trigger
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
    insert into public.ticket_events (ticket_id, municipality_id, kind, status, actor_profile_id, payload)
      values (new.id, new.municipality_id, v_kind, new.status, app.current_profile_id(), v_payload)
      returning id into v_event_id;
    perform pg_notify(
      'ticket_updates:' || new.municipality_id::text,
      (v_payload || jsonb_build_object('event_id', v_event_id))::text);
    return null;
  end
  $$;
create trigger notify_ticket_update after insert or update on public.tickets
  for each row execute function public.notify_ticket_update();

-- ---------------------------------------------------------------------------------------------
-- Row-level security: enabled and forced on every table, one policy per cell of the contract.
-- ---------------------------------------------------------------------------------------------

do $$
declare
  t text;
begin
  foreach t in array array['municipalities', 'wards', 'profiles', 'photos', 'tickets',
                           'ticket_counters', 'ticket_events', 'upload_intents', 'media'] loop
    execute format('alter table public.%I enable row level security', t);
    execute format('alter table public.%I force row level security', t);
    -- anon gets the same table rights as on Supabase (where default privileges grant them):
    -- the policies, which name no anon case, are what keep it out.
    execute format('grant select on public.%I to anon', t);
    execute format('grant select, insert, update, delete on public.%I to authenticated, service_role', t);
  end loop;
end
$$;
grant usage, select on all sequences in schema public to authenticated, service_role;
revoke all on public.ticket_counters from anon, authenticated;

-- municipalities, wards: your own municipality only.
create policy municipalities_select_own on public.municipalities for select to authenticated
  using (id = (select app.current_municipality_id()));
create policy wards_select_own on public.wards for select to authenticated
  using (municipality_id = (select app.current_municipality_id()));

-- profiles: your own; staff read their municipality's; admins change roles (column rules in
-- guard_profile_update); a person signing up creates their own citizen profile.
create policy profiles_select_own on public.profiles for select to authenticated
  using (auth_user_id = (select auth.uid()));
create policy profiles_select_staff on public.profiles for select to authenticated
  using (municipality_id = (select app.current_municipality_id())
         and (select app.current_app_role()) in ('manager', 'saps_liaison', 'admin'));
create policy profiles_insert_self on public.profiles for insert to authenticated
  with check (auth_user_id = (select auth.uid()) and role = 'citizen');
create policy profiles_update_own on public.profiles for update to authenticated
  using (auth_user_id = (select auth.uid()))
  with check (auth_user_id = (select auth.uid()));
create policy profiles_update_admin on public.profiles for update to authenticated
  using (municipality_id = (select app.current_municipality_id())
         and (select app.current_app_role()) = 'admin')
  with check (municipality_id = (select app.current_municipality_id()));

-- photos: your own only (thumbnails are public through their storage bucket).
create policy photos_select_own on public.photos for select to authenticated
  using (profile_id = (select app.current_profile_id()));
create policy photos_insert_own on public.photos for insert to authenticated
  with check (profile_id = (select app.current_profile_id()));
create policy photos_update_own on public.photos for update to authenticated
  using (profile_id = (select app.current_profile_id()))
  with check (profile_id = (select app.current_profile_id()));
create policy photos_delete_own on public.photos for delete to authenticated
  using (profile_id = (select app.current_profile_id()));

-- tickets: reporters see theirs, field workers the non-sensitive ones assigned to them, staff
-- all of their municipality's.
create policy tickets_select on public.tickets for select to authenticated
  using (municipality_id = (select app.current_municipality_id())
         and (reporter_id = (select app.current_profile_id())
              or (assignee_id = (select app.current_profile_id()) and not is_sensitive)
              or (select app.current_app_role()) in ('manager', 'saps_liaison', 'admin')));
create policy tickets_insert on public.tickets for insert to authenticated
  with check (municipality_id = (select app.current_municipality_id())
              and reporter_id = (select app.current_profile_id())
              and (select app.current_app_role()) in ('citizen', 'manager', 'saps_liaison', 'admin'));
create policy tickets_update_staff on public.tickets for update to authenticated
  using (municipality_id = (select app.current_municipality_id())
         and (select app.current_app_role()) in ('manager', 'admin'))
  with check (municipality_id = (select app.current_municipality_id()));
create policy tickets_update_saps on public.tickets for update to authenticated
  using (municipality_id = (select app.current_municipality_id())
         and is_sensitive
         and (select app.current_app_role()) = 'saps_liaison')
  with check (municipality_id = (select app.current_municipality_id()) and is_sensitive);
create policy tickets_update_assigned_worker on public.tickets for update to authenticated
  using (assignee_id = (select app.current_profile_id())
         and not is_sensitive
         and (select app.current_app_role()) = 'field_worker')
  with check (assignee_id = (select app.current_profile_id()) and not is_sensitive);

-- ticket_events: the history of the tickets you can see (the subquery runs under tickets'
-- policies, so visibility has one definition); staff may add notices.
create policy ticket_events_select on public.ticket_events for select to authenticated
  using (exists (select 1 from public.tickets t where t.id = ticket_events.ticket_id));
create policy ticket_events_insert_notice on public.ticket_events for insert to authenticated
  with check (kind = 'NOTICE'
              and actor_profile_id = (select app.current_profile_id())
              and municipality_id = (select app.current_municipality_id())
              and (select app.current_app_role()) in ('manager', 'admin')
              and exists (select 1 from public.tickets t where t.id = ticket_events.ticket_id));

-- upload_intents: your own, for tickets you can see; only staff who may upload GBV evidence
-- get an intent for the gbv-evidence bucket.
create policy upload_intents_select_own on public.upload_intents for select to authenticated
  using (created_by = (select app.current_profile_id()));
create policy upload_intents_insert_own on public.upload_intents for insert to authenticated
  with check (created_by = (select app.current_profile_id())
              and municipality_id = (select app.current_municipality_id())
              and (ticket_id is null
                   or exists (select 1 from public.tickets t where t.id = upload_intents.ticket_id))
              and (bucket <> 'gbv-evidence'
                   or (select app.current_app_role()) in ('manager', 'saps_liaison', 'admin')));
create policy upload_intents_update_own on public.upload_intents for update to authenticated
  using (created_by = (select app.current_profile_id()))
  with check (created_by = (select app.current_profile_id()));

-- media: files of tickets you can see; gbv-evidence only for SAPS liaisons and admins to read,
-- and also managers to upload.
create policy media_select on public.media for select to authenticated
  using (exists (select 1 from public.tickets t where t.id = media.ticket_id)
         and (bucket <> 'gbv-evidence'
              or (select app.current_app_role()) in ('saps_liaison', 'admin')));
create policy media_insert on public.media for insert to authenticated
  with check (uploaded_by = (select app.current_profile_id())
              and exists (select 1 from public.tickets t where t.id = media.ticket_id)
              and (bucket <> 'gbv-evidence'
                   or (select app.current_app_role()) in ('manager', 'saps_liaison', 'admin')));

grant execute on function app.current_profile_id(), app.current_municipality_id(),
  app.current_app_role(), app.sla_interval(text) to anon, authenticated, service_role;

-- sea-orm-migration's bookkeeping table lives in public too: keep it away from request roles.
do $$
begin
  if to_regclass('public.seaql_migrations') is not null then
    revoke all on public.seaql_migrations from anon, authenticated;
    alter table public.seaql_migrations enable row level security;
  end if;
end
$$;
