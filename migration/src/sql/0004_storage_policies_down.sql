drop policy if exists ward_user_photos_own on storage.objects;
drop policy if exists ward_thumbnails_public_read on storage.objects;
drop policy if exists ward_thumbnails_own_write on storage.objects;
drop policy if exists ward_ticket_files_read on storage.objects;
drop policy if exists ward_gbv_evidence_read on storage.objects;
drop policy if exists ward_ticket_files_write on storage.objects;
