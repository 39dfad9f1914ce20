import { router } from "./router.svelte.ts";

/**
 * A page's filters and cursor live in its URL query, so a reload, the back button or a shared link shows the same
 * page. `queryOf` reads them from the router's path (reactive where it is read inside $derived); `setQuery` replaces
 * them, dropping empty values.
 */
export function queryOf(path: string): URLSearchParams {
  return new URLSearchParams(path.split("?")[1] ?? "");
}

export function setQuery(params: Record<string, string | undefined | null>, replace = false): void {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value) search.set(key, value);
  const base = router.path.split("?")[0] ?? "/";
  const text = search.toString();
  router.go(text ? `${base}?${text}` : base, replace);
}
