-- Supabase's database roles and `auth` helpers, created only where they are missing, so the
-- same migration applies to a bare PostgreSQL (the embedded default) and to a Supabase project.

do $$
begin
  -- ward's policy helpers (app.current_profile_id() and the like) are SECURITY DEFINER and
  -- read `profiles` on the caller's behalf. Under FORCE ROW LEVEL SECURITY they would recurse
  -- into profiles' own policies unless their owner bypasses RLS, so refuse, before creating
  -- anything, to build a schema that could never work.
  if not exists (
    select 1 from pg_roles where rolname = current_user and (rolsuper or rolbypassrls)
  ) then
    raise exception 'ward''s migrations must run as a role that bypasses row-level security (a superuser, or postgres on Supabase); % does not', current_user;
  end if;
end
$$;

do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
  -- The login role requests use: it can do nothing by itself (NOINHERIT) and switches to one of
  -- the three above per transaction.
  if not exists (select 1 from pg_roles where rolname = 'authenticator') then
    create role authenticator login noinherit;
  end if;
end
$$;

do $$
declare
  r text;
begin
  foreach r in array array['anon', 'authenticated', 'service_role'] loop
    if not exists (
      select 1 from pg_auth_members m
      join pg_roles g on g.oid = m.roleid
      join pg_roles u on u.oid = m.member
      where g.rolname = r and u.rolname = 'authenticator'
    ) then
      execute format('grant %I to authenticator', r);
    end if;
  end loop;
end
$$;

do $$
begin
  if not exists (select 1 from pg_namespace where nspname = 'auth') then
    create schema auth;
    grant usage on schema auth to anon, authenticated, service_role;
  end if;
end
$$;

-- The bodies are Supabase's own: they read the claims that each request transaction sets with
-- set_config('request.jwt.claims', ...). After a transaction ends the setting reads back as ''
-- rather than NULL, hence the nullif.
do $$
begin
  if to_regprocedure('auth.uid()') is null then
    create function auth.uid() returns uuid
      language sql stable
      as $f$
        select coalesce(
          nullif(current_setting('request.jwt.claim.sub', true), ''),
          (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
        )::uuid
      $f$;
  end if;
  if to_regprocedure('auth.role()') is null then
    create function auth.role() returns text
      language sql stable
      as $f$
        select coalesce(
          nullif(current_setting('request.jwt.claim.role', true), ''),
          (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
        )::text
      $f$;
  end if;
  if to_regprocedure('auth.jwt()') is null then
    create function auth.jwt() returns jsonb
      language sql stable
      as $f$
        select coalesce(
          nullif(current_setting('request.jwt.claim', true), ''),
          nullif(current_setting('request.jwt.claims', true), '')
        )::jsonb
      $f$;
  end if;
end
$$;
