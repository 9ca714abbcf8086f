-- Supabase Storage's catalogue, created only when the database has none (the embedded default);
-- on a Supabase project the schema exists and only ward's buckets are added.

do $$
begin
  if not exists (select 1 from pg_namespace where nspname = 'storage') then
    create schema storage;
    grant usage on schema storage to anon, authenticated, service_role;

    create table storage.buckets (
      id text primary key,
      name text not null unique,
      owner uuid,
      public boolean not null default false,
      file_size_limit bigint,
      allowed_mime_types text[],
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now()
    );

    create table storage.objects (
      id uuid primary key default gen_random_uuid(),
      bucket_id text not null references storage.buckets (id),
      name text not null,
      owner uuid,
      metadata jsonb,
      path_tokens text[] generated always as (string_to_array(name, '/')) stored,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      last_accessed_at timestamptz not null default now(),
      unique (bucket_id, name)
    );
    create index objects_bucket_prefix_idx on storage.objects (bucket_id, name text_pattern_ops);

    -- Supabase's helpers: the folders of an object name, its file name and extension.
    create function storage.foldername(name text) returns text[]
      language plpgsql immutable
      as $f$
      declare
        _parts text[];
      begin
        select string_to_array(name, '/') into _parts;
        return _parts[1:array_length(_parts, 1) - 1];
      end
      $f$;
    create function storage.filename(name text) returns text
      language plpgsql immutable
      as $f$
      declare
        _parts text[];
      begin
        select string_to_array(name, '/') into _parts;
        return _parts[array_length(_parts, 1)];
      end
      $f$;
    create function storage.extension(name text) returns text
      language plpgsql immutable
      as $f$
      declare
        _parts text[];
        _filename text;
      begin
        select string_to_array(name, '/') into _parts;
        select _parts[array_length(_parts, 1)] into _filename;
        return reverse(split_part(reverse(_filename), '.', 1));
      end
      $f$;

    alter table storage.buckets enable row level security;
    alter table storage.buckets force row level security;
    alter table storage.objects enable row level security;
    alter table storage.objects force row level security;
    grant select on storage.buckets to anon, authenticated;
    grant select on storage.objects to anon;
    grant select, insert, update, delete on storage.objects to authenticated;
    grant all on storage.buckets, storage.objects to service_role;

    create policy buckets_readable on storage.buckets for select to anon, authenticated using (true);
  end if;
end
$$;

insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types) values
  ('evidence', 'evidence', false, 52428800, null),
  ('documents', 'documents', false, 52428800, null),
  ('gbv-evidence', 'gbv-evidence', false, 52428800, null),
  ('user-photos', 'user-photos', false, 10485760,
     array['image/jpeg', 'image/png', 'image/webp', 'image/gif']),
  ('user-photos-thumbnails', 'user-photos-thumbnails', true, 1048576,
     array['image/jpeg', 'image/png', 'image/webp'])
on conflict (id) do nothing;
