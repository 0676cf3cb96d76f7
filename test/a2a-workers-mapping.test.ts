import { type Artifact, TaskState } from "@a2a-js/sdk";
import { describe, expect, it } from "vitest";
import { capabilityOf, mapArtifacts, mergeArtifact, resultOf } from "../src/server/execution/a2a-mapping.js";

const part = (content: NonNullable<Artifact["parts"][number]["content"]>, filename = "") => ({
  content,
  metadata: undefined,
  filename,
  mediaType: "",
});
const artifact = (artifactId: string, parts: Artifact["parts"], extra: Partial<Artifact> = {}): Artifact => ({
  artifactId,
  name: "",
  description: "",
  parts,
  metadata: undefined,
  extensions: [],
  ...extra,
});

describe("A2A artifacts as protocol artifacts", () => {
  it("maps text, protocol-shaped data, other data, raw files, and names what it cannot store", () => {
    const { artifacts, notes } = mapArtifacts([
      artifact("a1", [part({ $case: "text", value: "line 1\n" }), part({ $case: "text", value: "line 2\n" })], {
        name: "notes.md",
        metadata: { path: "docs/notes.md", operation: "modify" },
      }),
      artifact("a2", [
        part({ $case: "data", value: { path: "src/x.ts", operation: "create", content: "export {};\n" } }),
        part({ $case: "data", value: { answer: 42 } }),
      ]),
      artifact("a3", [part({ $case: "raw", value: Buffer.from("bytes as text\n") }, "out.txt")]),
      artifact("a4", [part({ $case: "raw", value: Buffer.from([0xff, 0xfe, 0x00, 0x81]) }, "blob.bin")]),
      artifact("a5", [part({ $case: "url", value: "https://example.com/report.pdf" }, "report.pdf")]),
    ]);
    expect(artifacts).toEqual([
      { path: "docs/notes.md", operation: "modify", content: "line 1\nline 2\n" },
      { path: "src/x.ts", operation: "create", content: "export {};\n" },
      { path: "a2.part2.json", operation: "create", content: JSON.stringify({ answer: 42 }, null, 2) },
      { path: "out.txt", operation: "create", content: "bytes as text\n" },
    ]);
    expect(notes).toHaveLength(2);
    expect(notes[0]).toContain("blob.bin: 4 bytes of binary content");
    expect(notes[1]).toBe("Artifact report.pdf is at https://example.com/report.pdf (not fetched).");
  });

  it("appends a chunked artifact and replaces one sent again whole", () => {
    const seen: Artifact[] = [];
    mergeArtifact(seen, artifact("c", [part({ $case: "text", value: "a" })], { name: "c.txt" }), false);
    mergeArtifact(seen, artifact("c", [part({ $case: "text", value: "b" })], { name: "c.txt" }), true);
    expect(mapArtifacts(seen).artifacts).toEqual([{ path: "c.txt", operation: "create", content: "ab" }]);
    mergeArtifact(seen, artifact("c", [part({ $case: "text", value: "whole" })], { name: "c.txt" }), false);
    expect(mapArtifacts(seen).artifacts[0]?.content).toBe("whole");
  });

  it("ends with the agent's message: failed and rejected are failed results with its words", () => {
    const status = (state: TaskState, text: string) => ({
      state,
      timestamp: undefined,
      message: {
        messageId: "m",
        contextId: "",
        taskId: "",
        role: 2,
        parts: [part({ $case: "text" as const, value: text })],
        metadata: undefined,
        extensions: [],
        referenceTaskIds: [],
      },
    });
    const rejected = resultOf(
      { status: status(TaskState.TASK_STATE_REJECTED, "Not mine"), artifacts: [] },
      [],
      [],
      Date.now(),
    );
    expect(rejected).toMatchObject({
      status: "failed",
      summary: "Not mine",
      error: { code: "a2a_rejected", message: "A2A task rejected: Not mine" },
    });
    const done = resultOf(
      { status: status(TaskState.TASK_STATE_COMPLETED, "Done"), artifacts: [] },
      [],
      ["l"],
      Date.now(),
    );
    expect(done).toMatchObject({ status: "completed", summary: "Done", artifacts: [], logs: ["l"] });
  });

  it("names capabilities after skills, or none when nothing of the id fits", () => {
    expect(capabilityOf("Code Review")).toBe("code-review");
    expect(capabilityOf("write_files")).toBe("write_files");
    expect(capabilityOf("---")).toBeNull();
  });
});
