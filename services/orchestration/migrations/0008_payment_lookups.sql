-- A payment's attempts and operations by its id, in the order payment_read lists them
-- (issue 18). The unique indexes of 0001 cover only the open ones, so every read of a
-- payment scanned both tables whole: a cost that grew with every payment ever made
-- (bench/payments: ~0.2 ms per read after 3 000 payments, 4 reads per payment).
CREATE INDEX payment_attempts_payment ON payment_attempts (payment_id, start_time, id);
CREATE INDEX payment_operations_payment ON payment_operations (payment_id, start_time, id);
