// Where the API is and who the customer is. The token comes from the sign-in form or the URL
// fragment (#token=…, never sent to a server); the API from ?api=, VITE_API_URL, or this
// origin (vite's proxy forwards /graphql and /invoices, see vite.config.mjs).
import { Environment, Network, Observable, RecordSource, Store } from "relay-runtime";

const KEY = "billing-portal-token";

export const apiBase = (
  new URLSearchParams(window.location.search).get("api") ||
  import.meta.env.VITE_API_URL ||
  ""
).replace(/\/$/, "");

export function initialToken() {
  const fragment = new URLSearchParams(window.location.hash.slice(1));
  const fromUrl = fragment.get("token");
  if (fromUrl) {
    sessionStorage.setItem(KEY, fromUrl);
    history.replaceState(null, "", window.location.pathname + window.location.search);
  }
  return sessionStorage.getItem(KEY);
}

export function saveToken(token) {
  if (token) sessionStorage.setItem(KEY, token);
  else sessionStorage.removeItem(KEY);
}

export class ApiError extends Error {}

export function createEnvironment(token) {
  const fetchFn = (operation, variables) =>
    Observable.from(
      fetch(`${apiBase}/graphql`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body: JSON.stringify({ query: operation.text, variables }),
      }).then(async (response) => {
        const body = await response.json().catch(() => null);
        if (!body || body.errors?.length) {
          const first = body?.errors?.[0];
          const error = new ApiError(first?.message || `HTTP ${response.status}`);
          error.code = first?.extensions?.code;
          throw error;
        }
        return body;
      }),
    );
  return new Environment({ network: Network.create(fetchFn), store: new Store(new RecordSource()) });
}

// Invoice.pdfUrl needs the bearer token too: fetch it with the header, hand out a blob URL.
export async function pdfBlobUrl(token, pdfUrl) {
  const url = new URL(pdfUrl, window.location.href);
  const response = await fetch(`${apiBase}${url.pathname}`, {
    headers: { authorization: `Bearer ${token}` },
  });
  if (!response.ok) throw new ApiError(`PDF: HTTP ${response.status}`);
  return URL.createObjectURL(await response.blob());
}

export function newKey() {
  return globalThis.crypto?.randomUUID?.() ?? `${Date.now()}-${Math.random().toString(16).slice(2)}`;
}

export function money(value) {
  return value ? `${value.decimal} ${value.currency}` : "—";
}

export function day(value) {
  return value ? new Date(value).toISOString().slice(0, 10) : "—";
}
