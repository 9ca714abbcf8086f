-- 0003's definition (six digits, cut beyond).
create or replace function app.next_tracking_number(p_municipality uuid) returns text
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
