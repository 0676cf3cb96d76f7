import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DomainError } from "../src/server/errors.js";
import { DATABASES } from "./helpers/databases.js";
import { actor, type Harness, harness } from "./helpers/services.js";

describe.each(DATABASES)("saved views on %s", (kind) => {
  let h: Harness;
  beforeAll(async () => {
    h = await harness(kind);
  });
  afterAll(() => h.dispose());

  it("saves, lists, replaces by name and deletes, per user", async () => {
    const alice = actor("operator", "alice");
    const bob = actor("viewer", "bob");
    await h.services.views.save(alice, "Critical", { priorities: ["critical"], sort: "created_desc" });
    await h.services.views.save(alice, "Failed", { states: ["failed"] });
    await h.services.views.save(bob, "Critical", { priorities: ["high"] });
    // same name for the same user replaces
    await h.services.views.save(alice, "Critical", { priorities: ["critical", "high"], text: "parser" });

    const mine = await h.services.views.list(alice);
    expect(mine.map((v) => v.name)).toEqual(["Critical", "Failed"]);
    expect(mine[0]?.filter).toMatchObject({ priorities: ["critical", "high"], text: "parser" });
    expect((await h.services.views.list(bob))[0]?.filter.priorities).toEqual(["high"]);

    // bob cannot delete alice's view
    const err = await h.services.views.delete(bob, mine[0]?.id as string).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DomainError);
    expect((err as DomainError).code).toBe("NOT_FOUND");

    await h.services.views.delete(alice, mine[0]?.id as string);
    expect((await h.services.views.list(alice)).map((v) => v.name)).toEqual(["Failed"]);
  });

  it("keeps dates of a stored filter as dates", async () => {
    const u = actor("operator", "carol");
    await h.services.views.save(u, "Range", { createdFrom: new Date("2026-01-01T00:00:00Z") });
    const [v] = await h.services.views.list(u);
    expect(v?.filter.createdFrom).toEqual(new Date("2026-01-01T00:00:00Z"));
  });
});
