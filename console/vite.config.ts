import { svelte } from "@sveltejs/vite-plugin-svelte";
import { defineConfig } from "vite";

/**
 * The console builds to console/dist/console/, which wrangler.toml serves as the Worker's static assets: files land
 * at /console/…, the app's base. `vite` (npm run dev starts it) serves the same app with hot reload and forwards
 * the API and `/live` sockets to the local platform on :8787.
 */
const platform = process.env.SWITCHBOARD_URL ?? "http://127.0.0.1:8787";

export default defineConfig({
  root: import.meta.dirname,
  base: "/console/",
  plugins: [svelte({ configFile: false })],
  build: { outDir: "dist/console", emptyOutDir: true, reportCompressedSize: true, target: "es2022" },
  server: {
    port: 5173,
    strictPort: true,
    proxy: {
      "/api": { target: platform, ws: true, changeOrigin: true },
      "/health": { target: platform, changeOrigin: true },
    },
  },
});
