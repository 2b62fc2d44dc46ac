"""A user's photo library kept consistent, inside the caller's transaction (which commits it
with the change it follows): the kept counts (`counts`: photos and bytes per user, labels per
run and per user, and their check) and which run the gallery shows for each photo
(`current_run`, changed only under the photo's lock)."""
