-- Authorization codes not yet redeemed die with what they were issued under
-- (issue 9): a revocation of their grant, the user's or the client's grants, or
-- the end of their sign-in marks them in the same transaction that revokes
-- the token families, and a marked code can no longer be redeemed.
ALTER TABLE auth_codes ADD COLUMN revoked_at BIGINT;
CREATE INDEX auth_codes_grant ON auth_codes (grant_id);
CREATE INDEX auth_codes_login_session ON auth_codes (login_session_id);
