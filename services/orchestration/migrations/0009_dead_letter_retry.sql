-- Dead-letter re-drive (dead_letters.c, EventService.RetryDeadLetter): when an
-- operator last handed a dead-lettered row back to its consumer. A re-driven
-- row is due again (dead_time NULL); if it is refused for good once more it is
-- a dead letter again, with this time kept.
ALTER TABLE outbox ADD COLUMN retry_time timestamptz;
ALTER TABLE monitoring_events ADD COLUMN retry_time timestamptz;
