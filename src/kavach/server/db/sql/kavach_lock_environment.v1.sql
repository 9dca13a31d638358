CREATE FUNCTION kavach_lock_environment(p_environment uuid)
RETURNS SETOF secret_versions
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM 1 FROM environments WHERE id = p_environment FOR UPDATE;
    RETURN QUERY
        SELECT * FROM secret_versions
        WHERE environment_id = p_environment
        ORDER BY seq DESC
        LIMIT 1;
END
$$
