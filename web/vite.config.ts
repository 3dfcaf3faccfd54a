import { resolve } from "node:path";
import { defineConfig } from "vite";

// The app is served by dispatch at "/" (same origin as /api and /ws); `vite` alone proxies to a local server.
export default defineConfig({
  build: {
    outDir: "dist",
    target: "es2022",
    sourcemap: true,
    emptyOutDir: true,
    rollupOptions: {
      input: { app: resolve(import.meta.dirname, "index.html"), protocol: resolve(import.meta.dirname, "examples/protocol.html") },
    },
  },
  worker: { format: "es" },
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  server: {
    proxy: {
      "/api": process.env.TINYIM_URL ?? "http://127.0.0.1:8080",
      "/ws": { target: (process.env.TINYIM_URL ?? "http://127.0.0.1:8080").replace(/^http/, "ws"), ws: true },
    },
  },
  test: { environment: "node", include: ["test/**/*.test.ts"] },
});
