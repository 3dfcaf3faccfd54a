import { describe, expect, it } from "vitest";
import { STRINGS } from "../src/ui/i18n";

const placeholders = (text: string) => [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

describe("strings", () => {
  it("has every English string in Chinese, with the same placeholders", () => {
    expect(Object.keys(STRINGS.zh).sort()).toEqual(Object.keys(STRINGS.en).sort());
    for (const [key, text] of Object.entries(STRINGS.en)) {
      expect(placeholders(STRINGS.zh[key as keyof typeof STRINGS.en]), key).toEqual(placeholders(text));
      expect(STRINGS.zh[key as keyof typeof STRINGS.en].trim(), key).not.toBe("");
    }
  });
});
