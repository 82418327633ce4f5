DELETE FROM api_keys WHERE role = 'proxy';
ALTER TABLE api_keys DROP CONSTRAINT api_keys_proxy_tenant_check;
ALTER TABLE api_keys DROP CONSTRAINT api_keys_role_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_role_check
    CHECK (role IN ('read', 'operate', 'admin'));
