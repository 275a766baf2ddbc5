DROP TABLE api_tokens;
DROP TABLE users;
DROP TABLE audit_events;
DROP TABLE image_approval_requests;
DROP TABLE image_tags;
DROP TABLE images;
