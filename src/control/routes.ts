/**
 * The control server's route table: path -> method -> route, looked up in `Map`s only, so a
 * path or a method named like an `Object` member (`constructor`, `toString`, `__proto__`) is
 * simply not found (404 or 405), never a prototype's function.
 *
 * @module
 */

/** The methods routes are declared for. */
export type Method = "GET" | "POST";

/** One endpoint: answers a request, or throws an `HttpError`. */
export type Route = (req: Request) => Promise<Response> | Response;

/** The methods of one path, as declared. */
export type RouteMethods = Partial<Record<Method, Route>>;

/** What a path and method come to. */
export type RouteMatch =
  | { kind: "found"; route: Route }
  | { kind: "wrong-method"; allow: string }
  | { kind: "no-path" };

/** One path's routes, each answer to `match` made once, when the table is built. */
interface PathEntry {
  found: ReadonlyMap<string, RouteMatch>;
  wrongMethod: RouteMatch;
}

const NO_PATH: RouteMatch = { kind: "no-path" };

/** Routes by path and method. */
export class RouteTable {
  readonly #paths = new Map<string, PathEntry>();

  /** `routes`: `[path, {GET, POST}]` pairs; a later pair for the same path replaces the earlier. */
  constructor(routes: Iterable<readonly [string, RouteMethods]>) {
    for (const [path, methods] of routes) {
      const found = new Map<string, RouteMatch>();
      for (const method of ["GET", "POST"] as const) {
        const route = Object.hasOwn(methods, method) ? methods[method] : undefined;
        if (route) found.set(method, { kind: "found", route });
      }
      const allow = [...found.keys()].join(", ");
      this.#paths.set(path, { found, wrongMethod: { kind: "wrong-method", allow } });
    }
  }

  /** The route for `method` on `path`, or why there is none (with `Allow` for a wrong method). */
  match(path: string, method: string): RouteMatch {
    const entry = this.#paths.get(path);
    if (entry === undefined) return NO_PATH;
    return entry.found.get(method) ?? entry.wrongMethod;
  }
}
