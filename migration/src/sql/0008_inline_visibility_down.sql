alter function app.ticket_visible_to(uuid, uuid, uuid, boolean, uuid, text, uuid) set search_path = '';
