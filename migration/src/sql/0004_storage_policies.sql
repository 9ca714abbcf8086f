-- Who may read and write which objects in ward's buckets, for clients that talk to Supabase
-- Storage directly with their own token. Each policy is created once; where storage.objects
-- belongs to another role and this one may not add policies (a plain PostgreSQL restored from
-- Supabase's SQL), the migration says so and goes on: hosted Supabase allows it.

do $$
declare
  p record;
begin
  for p in
    select * from (values
      ('ward_user_photos_own', 'all', 'authenticated',
       $q$bucket_id = 'user-photos'
          and (storage.foldername(name))[1] = (select app.current_profile_id())::text$q$),
      ('ward_thumbnails_public_read', 'select', 'anon, authenticated',
       $q$bucket_id = 'user-photos-thumbnails'$q$),
      ('ward_thumbnails_own_write', 'insert', 'authenticated',
       $q$bucket_id = 'user-photos-thumbnails'
          and (storage.foldername(name))[1] = (select app.current_profile_id())::text$q$),
      ('ward_ticket_files_read', 'select', 'authenticated',
       $q$bucket_id in ('evidence', 'documents')
          and exists (select 1 from public.media m
                      where m.bucket = objects.bucket_id and m.object_path = objects.name)$q$),
      ('ward_gbv_evidence_read', 'select', 'authenticated',
       $q$bucket_id = 'gbv-evidence'
          and (storage.foldername(name))[1] = (select app.current_municipality_id())::text
          and (select app.current_app_role()) in ('saps_liaison', 'admin')$q$),
      ('ward_ticket_files_write', 'insert', 'authenticated',
       $q$bucket_id in ('evidence', 'documents', 'gbv-evidence')
          and (storage.foldername(name))[1] = (select app.current_municipality_id())::text
          and exists (select 1 from public.upload_intents ui
                      where ui.bucket = objects.bucket_id and ui.object_path = objects.name
                        and ui.status = 'PENDING')$q$)
    ) as v(name, cmd, roles, expr)
  loop
    if exists (select 1 from pg_policies
               where schemaname = 'storage' and tablename = 'objects' and policyname = p.name) then
      continue;
    end if;
    begin
      if p.cmd = 'insert' then
        execute format('create policy %I on storage.objects for insert to %s with check (%s)',
                       p.name, p.roles, p.expr);
      elsif p.cmd = 'all' then
        execute format('create policy %I on storage.objects for all to %s using (%s) with check (%s)',
                       p.name, p.roles, p.expr, p.expr);
      else
        execute format('create policy %I on storage.objects for %s to %s using (%s)',
                       p.name, p.cmd, p.roles, p.expr);
      end if;
    exception when insufficient_privilege then
      raise warning 'ward: cannot create policy % on storage.objects (not its owner); add it as the owner', p.name;
    end;
  end loop;
end
$$;
