-- Profiles and photos: linking a person's first sign-in to the profile the relay created for
-- them, finding a municipality to register in, and nothing else. The tables and their
-- policies are in 0003.

-- Links the signed-in caller to the unlinked profile whose phone (preferred) or email equals a
-- verified contact claim of their token, and returns the caller's profile id (null when there
-- is none to link).
--
-- Why a function, and why SECURITY DEFINER: the caller cannot see an unlinked profile (it is
-- not theirs yet) and `guard_profile_update` forbids request roles to set `auth_user_id`. The
-- function reads the claims itself (`auth.jwt()`, the verified token ward put in the
-- transaction) instead of taking arguments, so it can only ever link the caller to a profile
-- carrying the caller's own contact details.
--
-- Verified: Supabase puts `email` and `phone` in its tokens once they are confirmed; a token
-- that says otherwise (`email_verified`/`phone_verified` false, at the top level or in
-- `user_metadata`, or an `email_confirmed_at`/`phone_confirmed_at` claim that is null) is not
-- used for that contact. Anonymous sign-ins (`is_anonymous`) never link.
--
-- Race-free: the update re-checks `auth_user_id is null` on the locked row, so of two
-- concurrent first requests (or two people claiming one profile) exactly one links;
-- `profiles.auth_user_id` is unique, so a person can never hold two profiles either.
create or replace function app.link_profile() returns uuid
  language plpgsql volatile security definer set search_path = ''
  as $$
  declare
    v_uid uuid := auth.uid();
    v_claims jsonb := coalesce(auth.jwt(), '{}'::jsonb);
    v_meta jsonb;
    v_email text;
    v_phone text;
    v_id uuid;
  begin
    if v_uid is null
       or coalesce(v_claims ->> 'role', '') <> 'authenticated'
       or coalesce(v_claims ->> 'is_anonymous', 'false') = 'true' then
      return null;
    end if;
    select p.id into v_id from public.profiles p where p.auth_user_id = v_uid;
    if v_id is not null then
      return v_id;
    end if;
    v_meta := case when jsonb_typeof(v_claims -> 'user_metadata') = 'object'
                   then v_claims -> 'user_metadata' else '{}'::jsonb end;
    if coalesce(v_claims ->> 'email_verified', v_meta ->> 'email_verified', 'true') <> 'false'
       and not (v_claims ? 'email_confirmed_at' and jsonb_typeof(v_claims -> 'email_confirmed_at') = 'null') then
      v_email := lower(nullif(btrim(v_claims ->> 'email'), ''));
    end if;
    if coalesce(v_claims ->> 'phone_verified', v_meta ->> 'phone_verified', 'true') <> 'false'
       and not (v_claims ? 'phone_confirmed_at' and jsonb_typeof(v_claims -> 'phone_confirmed_at') = 'null') then
      v_phone := nullif(btrim(v_claims ->> 'phone'), '');
      -- Supabase keeps phone numbers without the `+` that profiles store (E.164).
      if v_phone is not null and left(v_phone, 1) <> '+' then
        v_phone := '+' || v_phone;
      end if;
    end if;
    if v_email is null and v_phone is null then
      return null;
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
      -- Nothing to link, or a concurrent first request of this person linked it meanwhile.
      select p.id into v_id from public.profiles p where p.auth_user_id = v_uid;
    end if;
    return v_id;
  exception when unique_violation then
    -- A concurrent request linked this person to another matching profile first.
    select p.id into v_id from public.profiles p where p.auth_user_id = v_uid;
    return v_id;
  end
  $$;
revoke all on function app.link_profile() from public;
grant execute on function app.link_profile() to authenticated;

-- The municipality with this slug, for a person registering (who can see no municipality
-- before they have a profile in one). Reveals only the id of a slug the caller already knows.
create or replace function app.municipality_id_by_slug(p_slug text) returns uuid
  language sql stable security definer set search_path = ''
  as $$ select m.id from public.municipalities m where m.slug = lower(btrim(p_slug)) $$;
revoke all on function app.municipality_id_by_slug(text) from public;
grant execute on function app.municipality_id_by_slug(text) to authenticated;
