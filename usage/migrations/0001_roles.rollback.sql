-- The roles are cluster-wide and may serve other databases: only our membership goes.
REVOKE ocs_writer, ocs_portfolio FROM CURRENT_USER;
