-- Back to 0009's limits: 50 MiB for every ticket file. The guard keeps reading
-- app.max_upload_bytes, so the function stays, with the old numbers (0009's down drops both).
create or replace function app.max_upload_bytes(p_purpose text) returns bigint
  language sql immutable set search_path = ''
  as $$ select case p_purpose when 'PHOTO' then 10485760 else 52428800 end::bigint $$;
do $$
begin
  if has_table_privilege('storage.buckets', 'UPDATE') then
    update storage.buckets set file_size_limit = 52428800
      where id in ('evidence', 'gbv-evidence') and file_size_limit = 524288000;
  end if;
end
$$;
