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

/** Routes by path and method. */
export class RouteTable {
  readonly #routes = new Map<string, ReadonlyMap<string, Route>>();

  /** `routes`: `[path, {GET, POST}]` pairs; a later pair for the same path replaces the earlier. */
  constructor(routes: Iterable<readonly [string, RouteMethods]>) {
    for (const [path, methods] of routes) {
      const byMethod = new Map<string, Route>();
      for (const method of ["GET", "POST"] as const) {
        const route = Object.hasOwn(methods, method) ? methods[method] : undefined;
        if (route) byMethod.set(method, route);
      }
      this.#routes.set(path, byMethod);
    }
  }

  /** The route for `method` on `path`, or why there is none (with `Allow` for a wrong method). */
  match(path: string, method: string): RouteMatch {
    const methods = this.#routes.get(path);
    if (methods === undefined) return { kind: "no-path" };
    const route = methods.get(method);
    if (route === undefined) return { kind: "wrong-method", allow: [...methods.keys()].join(", ") };
    return { kind: "found", route };
  }
}
