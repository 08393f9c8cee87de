import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// Built by web/build.ts into dist/web/admin, served by the API at /admin/. `npx vite web/admin` serves
// it with hot reload and sends the API's paths to `npm start` on port 8000.
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/admin/',
  plugins: [react()],
  build: {
    outDir: fileURLToPath(new URL('../../dist/web/admin', import.meta.url)),
    emptyOutDir: true,
  },
  server: { proxy: { '/api': 'http://localhost:8000' } },
});
