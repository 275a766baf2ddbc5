-- The platform profile finds the active import of a target repository and tag (`PUT /api/v1/images:import/{name}/progress`).
CREATE INDEX imports_active_target ON imports (target_repository, target_tag) WHERE state IN ('queued', 'running');
