DROP TABLE IF EXISTS api_job_rejects;
DROP TABLE IF EXISTS api_jobs;
