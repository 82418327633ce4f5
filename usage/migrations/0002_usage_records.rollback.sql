DROP VIEW usage_partitions;
DROP FUNCTION usage_ensure_month(date);
DROP TABLE usage_records;
