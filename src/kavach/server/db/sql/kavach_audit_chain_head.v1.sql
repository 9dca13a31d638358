CREATE FUNCTION kavach_audit_chain_head(p_chain text)
RETURNS TABLE (head_seq bigint, head_hash text)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(1262572868);
    PERFORM pg_advisory_xact_lock(1262572868, hashtext(p_chain));
    RETURN QUERY
        SELECT e.chain_seq, e.hash::text FROM audit_events AS e
        WHERE e.chain = p_chain AND e.chain_seq IS NOT NULL
        ORDER BY e.chain_seq DESC
        LIMIT 1;
END
$$
