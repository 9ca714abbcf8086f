-- The whole policy contract in the database (docs/POLICY.md): every value a request role
-- (anon, authenticated: what PostgREST, pg_graphql or ward itself use with a person's token)
-- must not choose is set or refused here, so direct SQL with a real token can do no more than
-- ward's GraphQL API. Where a policy cannot say it (column rules, values derived from other
-- rows), a BEFORE trigger running as the caller does; the service role and the migration owner
-- are trusted. Every guard raises 42501 (insufficient_privilege), which ward reports as
-- FORBIDDEN without the message's SQL details.

-- ---------------------------------------------------------------------------------------------
-- Helpers
-- ---------------------------------------------------------------------------------------------

-- Whether this statement runs for a request role, i.e. under a person's (or nobody's) token.
-- Guards call it from SECURITY INVOKER triggers, where current_user is the request's role.
create function app.is_request_role() returns boolean
  language sql stable set search_path = ''
  as $$ select current_user in ('anon', 'authenticated') $$;

-- The caller's verified email and phone (E.164, with `+`), from the verified token ward put in
-- the transaction: Supabase includes them once confirmed; a token that marks one unverified
-- (`*_verified` false at the top level or in `user_metadata`, or a null `*_confirmed_at`), an
-- anonymous sign-in, or a non-`authenticated` role yields null. One definition, used by profile
-- linking and by the profile guards.
create function app.verified_contact(p_kind text) returns text
  language plpgsql stable set search_path = ''
  as $$
  declare
    v_claims jsonb := coalesce(auth.jwt(), '{}'::jsonb);
    v_meta jsonb;
    v_value text;
  begin
    if coalesce(v_claims ->> 'role', '') <> 'authenticated'
       or coalesce(v_claims ->> 'is_anonymous', 'false') = 'true'
       or p_kind not in ('email', 'phone') then
      return null;
    end if;
    v_meta := case when jsonb_typeof(v_claims -> 'user_metadata') = 'object'
                   then v_claims -> 'user_metadata' else '{}'::jsonb end;
    if coalesce(v_claims ->> (p_kind || '_verified'), v_meta ->> (p_kind || '_verified'), 'true') = 'false'
       or (v_claims ? (p_kind || '_confirmed_at')
           and jsonb_typeof(v_claims -> (p_kind || '_confirmed_at')) = 'null') then
      return null;
    end if;
    v_value := nullif(btrim(v_claims ->> p_kind), '');
    if v_value is null then
      return null;
    end if;
    if p_kind = 'email' then
      return lower(v_value);
    end if;
    -- Supabase keeps phone numbers without the `+` that profiles store.
    return case when left(v_value, 1) = '+' then v_value else '+' || v_value end;
  end
  $$;
grant execute on function app.verified_contact(text) to anon, authenticated, service_role;

-- The payload recorded with (and announced for) a ticket event: one definition for every
-- event writer that runs after this migration.
create function app.ticket_event_payload(t public.tickets, p_kind text, p_notice_kind text)
  returns jsonb
  language sql stable set search_path = ''
  as $$
    select jsonb_strip_nulls(jsonb_build_object('notice_kind', p_notice_kind)) || jsonb_build_object(
      'type', p_kind,
      'ticket_id', t.id,
      'tracking_number', t.tracking_number,
      'status', t.status,
      'category', t.category,
      'municipality_id', t.municipality_id,
      'ward_id', t.ward_id,
      'is_sensitive', t.is_sensitive,
      'updated_at', t.updated_at)
  $$;
grant execute on function app.ticket_event_payload(public.tickets, text, text) to authenticated, service_role;

-- Whether a person may be a ticket's assignee: a field worker or manager of its municipality.
-- SECURITY DEFINER: the caller need not be able to read that person's profile.
create function app.may_be_assigned(p_profile uuid, p_municipality uuid) returns boolean
  language sql stable security definer set search_path = ''
  as $$
    select exists (select 1 from public.profiles p
                   where p.id = p_profile and p.municipality_id = p_municipality
                     and p.role in ('field_worker', 'manager'))
  $$;
revoke all on function app.may_be_assigned(uuid, uuid) from public;
grant execute on function app.may_be_assigned(uuid, uuid) to authenticated, service_role;

-- The ticket workflow: which status moves are allowed at all (who may make them is below).
create function app.ticket_transition_allowed(p_from text, p_to text) returns boolean
  language sql immutable set search_path = ''
  as $$
    select (p_from, p_to) in (
      ('OPEN', 'IN_PROGRESS'), ('OPEN', 'RESOLVED'), ('OPEN', 'REJECTED'), ('OPEN', 'CLOSED'),
      ('IN_PROGRESS', 'OPEN'), ('IN_PROGRESS', 'RESOLVED'), ('IN_PROGRESS', 'REJECTED'),
      ('RESOLVED', 'CLOSED'), ('RESOLVED', 'OPEN'),
      ('CLOSED', 'OPEN'),
      ('REJECTED', 'OPEN'))
  $$;
grant execute on function app.ticket_transition_allowed(text, text) to anon, authenticated, service_role;

-- Linking a first sign-in now reads the caller's contacts through the one definition above.
create or replace function app.link_profile() returns uuid
  language plpgsql volatile security definer set search_path = ''
  as $$
  declare
    v_uid uuid := auth.uid();
    v_email text := app.verified_contact('email');
    v_phone text := app.verified_contact('phone');
    v_id uuid;
  begin
    if v_uid is null or (v_email is null and v_phone is null) then
      return (select p.id from public.profiles p where p.auth_user_id = v_uid);
    end if;
    select p.id into v_id from public.profiles p where p.auth_user_id = v_uid;
    if v_id is not null then
      return v_id;
    end if;
    update public.profiles p set auth_user_id = v_uid
      where p.id = (select c.id from public.profiles c
                     where c.auth_user_id is null
                       and (c.phone = v_phone or c.email = v_email)
                     order by (c.phone is not distinct from v_phone) desc, c.created_at, c.id
                     limit 1)
        and p.auth_user_id is null
      returning p.id into v_id;
    if v_id is null then
      select p.id into v_id from public.profiles p where p.auth_user_id = v_uid;
    end if;
    return v_id;
  exception when unique_violation then
    select p.id into v_id from public.profiles p where p.auth_user_id = v_uid;
    return v_id;
  end
  $$;

-- ---------------------------------------------------------------------------------------------
-- profiles: contacts only from verified claims; role and municipality changes announced
-- ---------------------------------------------------------------------------------------------

-- P-PROFILE-CONTACT: a person's phone and email are null or what their token verifies.
create function app.guard_profile_contact() returns trigger
  language plpgsql set search_path = ''
  as $$
  begin
    if not app.is_request_role() then
      return new;
    end if;
    if tg_op = 'INSERT' then
      new.created_at := now();
      new.updated_at := now();
    end if;
    if new.phone is not null
       and (tg_op = 'INSERT' or new.phone is distinct from old.phone)
       and new.phone is distinct from app.verified_contact('phone') then
      raise exception 'a profile''s phone number must be the one your sign-in verified'
        using errcode = '42501';
    end if;
    if new.email is not null
       and (tg_op = 'INSERT' or new.email is distinct from old.email)
       and new.email is distinct from app.verified_contact('email') then
      raise exception 'a profile''s email must be the one your sign-in verified'
        using errcode = '42501';
    end if;
    return new;
  end
  $$;
create trigger guard_profile_contact before insert or update on public.profiles
  for each row execute function app.guard_profile_contact();

-- P-LIVE-RIGHTS: open subscriptions re-read their subscribers' profiles when one changes in a
-- way that changes what they may see. The payload is only a hint; the listener trusts nothing
-- in it.
create function app.announce_profile_change() returns trigger
  language plpgsql set search_path = ''
  as $$
  begin
    perform pg_notify('ward_profile_changes', old.id::text);
    return null;
  end
  $$;
create trigger announce_profile_change after update on public.profiles
  for each row
  when (old.role is distinct from new.role
        or old.municipality_id is distinct from new.municipality_id
        or old.auth_user_id is distinct from new.auth_user_id)
  execute function app.announce_profile_change();
create trigger announce_profile_delete after delete on public.profiles
  for each row execute function app.announce_profile_change();

-- ---------------------------------------------------------------------------------------------
-- tickets: what a reporter may choose, the workflow, assignment and the sensitivity flag
-- ---------------------------------------------------------------------------------------------

-- P-TICKET-INSERT. Fires before prepare_ticket_insert (trigger order is by name), which then
-- gives every ticket its tracking number: nobody chooses one, so nobody can squat the next.
create function app.guard_ticket_insert() returns trigger
  language plpgsql set search_path = ''
  as $$
  begin
    new.tracking_number := null;
    if app.is_request_role() then
      new.status := 'OPEN';
      new.assignee_id := null;
      new.created_at := now();
      new.updated_at := now();
      new.sla_due_at := null;
      if coalesce(app.current_app_role(), '') not in ('manager', 'saps_liaison', 'admin') then
        new.priority := 'NORMAL';
      end if;
    end if;
    return new;
  end
  $$;
create trigger guard_ticket_insert before insert on public.tickets
  for each row execute function app.guard_ticket_insert();

-- P-TICKET-UPDATE. Fires before prepare_ticket_update, which keeps identity, reporter and
-- municipality and bumps the version.
create function app.guard_ticket_update() returns trigger
  language plpgsql set search_path = ''
  as $$
  declare
    v_role text;
  begin
    if not app.is_request_role() then
      return new;
    end if;
    v_role := coalesce(app.current_app_role(), '');
    if new.sla_due_at is distinct from old.sla_due_at then
      raise exception 'a ticket''s SLA due time is set by the database' using errcode = '42501';
    end if;
    -- P-TICKET-SLA: the due time follows the category.
    if new.category <> old.category then
      new.sla_due_at := new.created_at + app.sla_interval(new.category);
    end if;
    if new.status <> old.status then
      if not app.ticket_transition_allowed(old.status, new.status) then
        raise exception 'a ticket cannot go from % to %', old.status, new.status using errcode = '42501';
      end if;
      if v_role = 'field_worker' and not (old.status, new.status) in
           (('OPEN', 'IN_PROGRESS'), ('OPEN', 'RESOLVED'), ('IN_PROGRESS', 'OPEN'), ('IN_PROGRESS', 'RESOLVED')) then
        raise exception 'a field worker cannot move a ticket from % to %', old.status, new.status
          using errcode = '42501';
      end if;
    end if;
    if new.assignee_id is distinct from old.assignee_id and new.assignee_id is not null
       and not app.may_be_assigned(new.assignee_id, new.municipality_id) then
      raise exception 'the assignee must be a field worker or manager of the ticket''s municipality'
        using errcode = '42501';
    end if;
    -- P-GBV-UNFLAG: flagging is for managers and admins; lifting the flag for SAPS liaisons
    -- and admins only, who decide whether a case is gender-based violence.
    if old.is_sensitive and not new.is_sensitive and v_role not in ('saps_liaison', 'admin') then
      raise exception 'only SAPS liaisons and admins lift a ticket''s sensitive flag' using errcode = '42501';
    end if;
    new.updated_at := now();
    return new;
  end
  $$;
create trigger guard_ticket_update before update on public.tickets
  for each row execute function app.guard_ticket_update();

-- SAPS liaisons work sensitive tickets and may lift the flag (the row then leaves their
-- update policy's USING but still passes its CHECK).
alter policy tickets_update_saps on public.tickets
  with check (municipality_id = (select app.current_municipality_id()));

-- ---------------------------------------------------------------------------------------------
-- ticket_events: only notices, with every derived column set by the database
-- ---------------------------------------------------------------------------------------------

-- P-EVENT-INSERT. The id comes from the sequence under the municipality's event lock (a caller
-- cannot pick one, not even with OVERRIDING SYSTEM VALUE, and ids still commit in order); the
-- status, payload, time and actor come from the ticket and the caller.
create function app.guard_ticket_event_insert() returns trigger
  language plpgsql set search_path = ''
  as $$
  declare
    t public.tickets;
  begin
    if not app.is_request_role() then
      return new;
    end if;
    -- The sweeper's notice is the database's to record (one per ticket: a forged one would
    -- hide the real breach).
    if new.notice_kind = 'SLA_BREACHED' then
      raise exception 'SLA_BREACHED notices are recorded by the SLA sweeper only' using errcode = '42501';
    end if;
    select * into t from public.tickets where id = new.ticket_id;
    if not found then
      raise exception 'ticket not found' using errcode = '42501';
    end if;
    perform app.lock_ticket_events(t.municipality_id);
    new.id := nextval(pg_get_serial_sequence('public.ticket_events', 'id'));
    new.municipality_id := t.municipality_id;
    new.status := t.status;
    new.actor_profile_id := app.current_profile_id();
    new.created_at := now();
    new.payload := app.ticket_event_payload(t, new.kind, new.notice_kind);
    return new;
  end
  $$;
create trigger guard_ticket_event_insert before insert on public.ticket_events
  for each row execute function app.guard_ticket_event_insert();

-- ---------------------------------------------------------------------------------------------
-- upload_intents: where a file may go is derived, and only its confirmation may change
-- ---------------------------------------------------------------------------------------------

-- P-INTENT-INSERT: the bucket follows the purpose and the ticket's sensitivity, the path lies
-- in the municipality's (ticket files) or the person's (photos) folder, a new intent is
-- pending and lives at most two hours.
create function app.guard_upload_intent() returns trigger
  language plpgsql set search_path = ''
  as $$
  declare
    t public.tickets;
    v_bucket text;
    v_folder uuid;
    v_limit bigint;
  begin
    if not app.is_request_role() then
      return new;
    end if;
    if tg_op = 'UPDATE' then
      -- P-INTENT-UPDATE: the owner may confirm a pending intent, nothing else.
      if (new.id, new.municipality_id, new.created_by, new.purpose, new.ticket_id, new.bucket,
          new.object_path, new.filename, new.content_type, new.max_size_bytes, new.expires_at,
          new.created_at)
         is distinct from
         (old.id, old.municipality_id, old.created_by, old.purpose, old.ticket_id, old.bucket,
          old.object_path, old.filename, old.content_type, old.max_size_bytes, old.expires_at,
          old.created_at)
         or (new.status <> old.status and not (old.status = 'PENDING' and new.status = 'CONFIRMED')) then
        raise exception 'only the confirmation of a pending upload intent can change' using errcode = '42501';
      end if;
      new.updated_at := now();
      return new;
    end if;
    new.status := 'PENDING';
    new.created_at := now();
    new.updated_at := now();
    new.expires_at := least(new.expires_at, now() + interval '2 hours');
    if new.ticket_id is not null then
      select * into t from public.tickets where id = new.ticket_id;
      if not found then
        raise exception 'ticket not found' using errcode = '42501';
      end if;
      v_bucket := case
        when new.purpose = 'DOCUMENT' then 'documents'
        when new.purpose = 'EVIDENCE' and not t.is_sensitive then 'evidence'
        when new.purpose = 'GBV_EVIDENCE' and t.is_sensitive then 'gbv-evidence'
      end;
      v_folder := t.municipality_id;
      new.municipality_id := t.municipality_id;
    else
      v_bucket := case when new.purpose = 'PHOTO' then 'user-photos' end;
      v_folder := new.created_by;
    end if;
    if v_bucket is distinct from new.bucket then
      raise exception 'this file''s bucket follows its purpose and the ticket''s sensitivity' using errcode = '42501';
    end if;
    -- The largest file of its kind (ward's MAX_FILE_BYTES and MAX_PHOTO_BYTES).
    v_limit := case when new.purpose = 'PHOTO' then 10485760 else 52428800 end;
    if new.max_size_bytes > v_limit then
      raise exception 'this file is larger than its kind allows' using errcode = '42501';
    end if;
    if split_part(new.object_path, '/', 1) <> v_folder::text then
      raise exception 'this file''s path must lie in its owner''s folder' using errcode = '42501';
    end if;
    return new;
  end
  $$;
create trigger guard_upload_intent before insert or update on public.upload_intents
  for each row execute function app.guard_upload_intent();

-- ---------------------------------------------------------------------------------------------
-- media: a ticket file is the confirmation of the caller's own pending intent
-- ---------------------------------------------------------------------------------------------

-- P-MEDIA-INSERT: no file row may point at an object its uploader did not upload through an
-- intent (the storage read policy trusts media rows).
create function app.guard_media_insert() returns trigger
  language plpgsql set search_path = ''
  as $$
  declare
    i public.upload_intents;
  begin
    if not app.is_request_role() then
      return new;
    end if;
    -- Under the caller's policies: their own intents only.
    select * into i from public.upload_intents where id = new.upload_intent_id;
    if not found or i.status <> 'PENDING' or i.expires_at < now()
       or i.ticket_id is distinct from new.ticket_id
       or i.bucket <> new.bucket or i.object_path <> new.object_path
       or new.size_bytes > i.max_size_bytes then
      raise exception 'a ticket file must confirm your own pending upload intent' using errcode = '42501';
    end if;
    new.municipality_id := i.municipality_id;
    new.purpose := i.purpose;
    new.content_type := i.content_type;
    new.uploaded_by := app.current_profile_id();
    new.created_at := now();
    new.updated_at := now();
    return new;
  end
  $$;
create trigger guard_media_insert before insert on public.media
  for each row execute function app.guard_media_insert();

-- P-GBV-READ: the firewall follows the ticket. Files of a sensitive ticket, in whatever bucket
-- they were stored before the flag, and everything in gbv-evidence, are for SAPS liaisons and
-- admins only. The storage read policy of evidence and documents looks through this one.
alter policy media_select on public.media
  using (exists (select 1 from public.tickets t
                 where t.id = media.ticket_id
                   and ((not t.is_sensitive and media.bucket <> 'gbv-evidence')
                        or (select app.current_app_role()) in ('saps_liaison', 'admin'))));

-- Whether a link signed at p_signed_at may not serve an object: it is a file of a sensitive
-- ticket kept outside gbv-evidence and the link predates the ticket's last change (the flag
-- among them), so a link handed out before the flag stops working; ward signs such links
-- afterwards only for SAPS liaisons and admins. For the local storage backend, which asks as
-- the service role.
create function app.object_withheld(p_bucket text, p_name text, p_signed_at timestamptz) returns boolean
  language sql stable set search_path = ''
  as $$
    select exists (select 1 from public.media m join public.tickets t on t.id = m.ticket_id
                   where m.bucket = p_bucket and m.object_path = p_name
                     and t.is_sensitive and m.bucket <> 'gbv-evidence'
                     and t.updated_at >= p_signed_at)
  $$;
revoke all on function app.object_withheld(text, text, timestamptz) from public;
grant execute on function app.object_withheld(text, text, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- photos: in the owner's folder only
-- ---------------------------------------------------------------------------------------------

-- P-PHOTO-WRITE: a photo row may only name objects in its owner's folder (ward signs links to
-- them for the owner).
create function app.guard_photo() returns trigger
  language plpgsql set search_path = ''
  as $$
  begin
    if not app.is_request_role() then
      return new;
    end if;
    if split_part(new.object_path, '/', 1) <> new.profile_id::text
       or (new.thumbnail_path is not null and split_part(new.thumbnail_path, '/', 1) <> new.profile_id::text) then
      raise exception 'a photo must lie in its owner''s folder' using errcode = '42501';
    end if;
    if tg_op = 'INSERT' then
      new.created_at := now();
    elsif (new.id, new.profile_id, new.bucket, new.object_path, new.content_type, new.size_bytes,
           new.width, new.height, new.created_at)
          is distinct from
          (old.id, old.profile_id, old.bucket, old.object_path, old.content_type, old.size_bytes,
           old.width, old.height, old.created_at) then
      raise exception 'only a photo''s thumbnail can change' using errcode = '42501';
    end if;
    new.updated_at := now();
    return new;
  end
  $$;
create trigger guard_photo before insert or update on public.photos
  for each row execute function app.guard_photo();
