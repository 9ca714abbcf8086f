-- The largest file of each kind, in one place: evidence is often video from a phone (500 MiB),
-- documents stay at 50 MiB and photos at 10 MiB. ward's `uploads::max_file_bytes` and
-- `photos::MAX_PHOTO_BYTES` give the same numbers; the intent guard (P-INTENT-INSERT) and the
-- evidence buckets' `file_size_limit` follow this function.
create or replace function app.max_upload_bytes(p_purpose text) returns bigint
  language sql immutable set search_path = ''
  as $$
    select case p_purpose
      when 'PHOTO' then 10485760
      when 'EVIDENCE' then 524288000
      when 'GBV_EVIDENCE' then 524288000
      else 52428800
    end::bigint
  $$;
grant execute on function app.max_upload_bytes(text) to anon, authenticated, service_role;

-- P-INTENT-INSERT as in 0009, with the size limit read from app.max_upload_bytes.
create or replace function app.guard_upload_intent() returns trigger
  language plpgsql set search_path = ''
  as $$
  declare
    t public.tickets;
    v_bucket text;
    v_folder uuid;
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
    if new.max_size_bytes > app.max_upload_bytes(new.purpose) then
      raise exception 'this file is larger than its kind allows' using errcode = '42501';
    end if;
    if split_part(new.object_path, '/', 1) <> v_folder::text then
      raise exception 'this file''s path must lie in its owner''s folder' using errcode = '42501';
    end if;
    return new;
  end
  $$;

-- The evidence buckets take what an evidence intent may promise. On a Supabase project whose
-- migrating role may not update `storage.buckets`, the dashboard's bucket settings do it (and
-- the project's global upload limit must allow it too).
do $$
begin
  if has_table_privilege('storage.buckets', 'UPDATE') then
    update storage.buckets set file_size_limit = app.max_upload_bytes('EVIDENCE')
      where id in ('evidence', 'gbv-evidence') and file_size_limit = 52428800;
  else
    raise notice 'ward: raise the file size limit of the evidence and gbv-evidence buckets to 500 MiB in the dashboard';
  end if;
end
$$;
