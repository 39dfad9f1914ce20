import type { Component } from "svelte";

/**
 * The console's pages by path (under /console/), matched in order; `:name` segments become params. A page is a
 * Svelte component taking `params`. History navigation, no hash: the Worker serves the app for every page path.
 */
export interface Page {
  path: string;
  title: string;
  component: Component<{ params: Record<string, string> }>;
}

export const BASE = "/console";

class Router {
  path = $state(currentPath());

  constructor() {
    addEventListener("popstate", () => {
      this.path = currentPath();
    });
  }

  go(path: string, replace = false): void {
    const url = `${BASE}${path === "/" ? "/" : path}`;
    if (replace) history.replaceState(null, "", url);
    else history.pushState(null, "", url);
    this.path = currentPath();
  }
}

function currentPath(): string {
  const { pathname, search } = location;
  const inApp = pathname === BASE || pathname.startsWith(`${BASE}/`) ? pathname.slice(BASE.length) : "/";
  return `${inApp || "/"}${search}`;
}

export function match(pages: readonly Page[], fullPath: string): { page: Page; params: Record<string, string> } | null {
  const path = fullPath.split("?")[0] ?? "/";
  const segments = path.split("/").filter(Boolean);
  for (const page of pages) {
    const pattern = page.path.split("/").filter(Boolean);
    if (pattern.length !== segments.length) continue;
    const params: Record<string, string> = {};
    const matched = pattern.every((part, index) => {
      const segment = segments[index] ?? "";
      if (part.startsWith(":")) {
        params[part.slice(1)] = decodeURIComponent(segment);
        return true;
      }
      return part === segment;
    });
    if (matched) return { page, params };
  }
  return null;
}

/** The query string of the current page as an object (filters kept in the URL, so a reload keeps them). */
export function searchParams(): URLSearchParams {
  return new URLSearchParams(location.search);
}

export const router = new Router();
