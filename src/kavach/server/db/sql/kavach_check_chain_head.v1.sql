CREATE FUNCTION kavach_check_chain_head(p_chain text, p_seq bigint, p_hash text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    found_seq bigint;
    found_hash text;
BEGIN
    SELECT h.head_seq, coalesce(h.head_hash, '') INTO found_seq, found_hash
        FROM kavach_audit_chain_head(p_chain) AS h;
    IF NOT FOUND THEN
        found_seq := 0;
        found_hash := repeat('0', 64);
    END IF;
    IF found_seq IS DISTINCT FROM p_seq OR found_hash IS DISTINCT FROM p_hash THEN
        RAISE EXCEPTION 'not at the expected head' USING ERRCODE = 'KV409';
    END IF;
    RETURN true;
END
$$
