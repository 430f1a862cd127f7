// The API has no CORS headers, so the portal reaches it through vite's proxy: the browser sees
// one origin, and vite forwards /graphql (WebSocket too) and the PDF routes to BILLING_API
// (default http://127.0.0.1:8000, what scripts/serve starts). `npm run dev` and
// `npm run preview` both proxy; a production deployment serves dist/ behind the same paths.
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";
import relay from "vite-plugin-relay";

const api = process.env.BILLING_API || "http://127.0.0.1:8000";
// changeOrigin stays false: the API then builds Invoice.pdfUrl on the portal's own origin.
const proxy = {
  "/graphql": { target: api, ws: true },
  "/invoices": { target: api },
};

export default defineConfig({
  plugins: [react(), relay],
  server: { proxy },
  preview: { proxy },
  build: { sourcemap: false },
});
