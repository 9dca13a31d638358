CREATE FUNCTION kavach_check_at_head(
    p_environment uuid, p_version text, p_chain text, p_seq bigint, p_hash text, p_epoch bigint
)
RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    latest secret_versions;
    epoch bigint;
BEGIN
    SELECT * INTO latest FROM kavach_lock_environment(p_environment);
    IF p_seq IS NOT NULL THEN
        PERFORM kavach_check_chain_head(p_chain, p_seq, p_hash);
    END IF;
    SELECT a.value INTO epoch FROM access_epoch AS a WHERE a.id = 1;
    IF latest.id IS DISTINCT FROM p_version OR epoch IS DISTINCT FROM p_epoch THEN
        RAISE EXCEPTION 'not at the expected version' USING ERRCODE = 'KV409';
    END IF;
    RETURN true;
END
$$
