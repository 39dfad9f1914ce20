-- Fuzzy customer search (workers/business/customer-search.ts): an FTS5 trigram index over the customer columns a
-- person says or types, kept in step with `customers` by triggers so no writer of customers has to know about it.
-- External content (the text lives once, in customers; the index holds only trigrams), keyed by customers' rowid.
-- `tenant_id` is UNINDEXED: read back to keep each query inside its tenant, never matched.
-- `phonetic` (Soundex codes, 4 characters each, space separated) is a column of the same index: a code is a fixed
-- 4-character token, so a trigram phrase "R400" finds exactly the rows holding that code, by index. (A side table of
-- one row per code would need the trigger to split the string, which SQLite triggers can do only with a fixed
-- number of substr() calls: triggers take no recursive CTE.)
CREATE VIRTUAL TABLE `customer_search` USING fts5(
	tenant_id UNINDEXED,
	name,
	nickname,
	phone,
	email,
	phonetic,
	content = 'customers',
	content_rowid = 'rowid',
	tokenize = 'trigram'
);
--> statement-breakpoint
CREATE TRIGGER `customers_search_insert` AFTER INSERT ON `customers` BEGIN
	INSERT INTO customer_search (rowid, tenant_id, name, nickname, phone, email, phonetic)
	VALUES (new.rowid, new.tenant_id, new.name, new.nickname, new.phone, new.email, new.phonetic);
END;
--> statement-breakpoint
CREATE TRIGGER `customers_search_delete` AFTER DELETE ON `customers` BEGIN
	INSERT INTO customer_search (customer_search, rowid, tenant_id, name, nickname, phone, email, phonetic)
	VALUES ('delete', old.rowid, old.tenant_id, old.name, old.nickname, old.phone, old.email, old.phonetic);
END;
--> statement-breakpoint
-- Only the searched columns: a balance change (every invoice and payment) leaves the index alone.
CREATE TRIGGER `customers_search_update` AFTER UPDATE OF tenant_id, name, nickname, phone, email, phonetic ON `customers` BEGIN
	INSERT INTO customer_search (customer_search, rowid, tenant_id, name, nickname, phone, email, phonetic)
	VALUES ('delete', old.rowid, old.tenant_id, old.name, old.nickname, old.phone, old.email, old.phonetic);
	INSERT INTO customer_search (rowid, tenant_id, name, nickname, phone, email, phonetic)
	VALUES (new.rowid, new.tenant_id, new.name, new.nickname, new.phone, new.email, new.phonetic);
END;
--> statement-breakpoint
-- Customers written before this migration.
INSERT INTO customer_search (customer_search) VALUES ('rebuild');
