-- How a worker confines the scripts it runs, as its /health reports it ("bubblewrap", "off", "unavailable");
-- NULL while unknown or when the worker does not say. The Workers page shows "unsandboxed" for "off".
ALTER TABLE "workers" ADD COLUMN "sandbox" VARCHAR(16);
