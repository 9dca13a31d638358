CREATE FUNCTION kavach_lock_for_commit(p_environment uuid, p_chain text)
RETURNS TABLE (
    epoch bigint,
    head_seq bigint,
    head_hash text,
    version_id text,
    version_seq integer,
    name text,
    data_key_id uuid,
    value_encrypted bytea
)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    latest secret_versions;
BEGIN
    SELECT * INTO latest FROM kavach_lock_environment(p_environment);
    SELECT h.head_seq, h.head_hash INTO head_seq, head_hash
        FROM kavach_audit_chain_head(p_chain) AS h;
    SELECT a.value INTO epoch FROM access_epoch AS a WHERE a.id = 1;
    RETURN QUERY
        SELECT epoch, head_seq, head_hash, latest.id::text, latest.seq,
               s.name::text, latest.data_key_id, s.value_encrypted
        FROM (SELECT 1) AS one
        LEFT JOIN secrets AS s ON s.version_id = latest.id
        ORDER BY s.name;
END
$$
