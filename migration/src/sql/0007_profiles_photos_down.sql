drop function if exists app.municipality_id_by_slug(text);
drop function if exists app.link_profile();
