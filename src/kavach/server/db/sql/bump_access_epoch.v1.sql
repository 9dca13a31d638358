CREATE FUNCTION bump_access_epoch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE access_epoch SET value = value + 1; RETURN NULL; END $$
