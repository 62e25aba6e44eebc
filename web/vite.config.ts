import { defineConfig } from "vitest/config";

// `npm run dev` serves the page and forwards the API to a running
// api-service (CUDLY_API_URL, default http://127.0.0.1:50051): gRPC-web
// calls are POSTs to /cudly.<package>.<Service>/<Method> (and /grpc.* for
// health), and /config.json comes from api-service too.
const api = process.env.CUDLY_API_URL ?? "http://127.0.0.1:50051";

export default defineConfig({
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  server: {
    host: "127.0.0.1",
    proxy: {
      "/cudly.": { target: api, changeOrigin: true },
      "/grpc.": { target: api, changeOrigin: true },
      "/config.json": { target: api, changeOrigin: true },
    },
  },
  preview: { host: "127.0.0.1" },
  build: {
    outDir: "dist",
    assetsDir: "assets",
    target: "es2022",
    sourcemap: false,
  },
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
  },
});
