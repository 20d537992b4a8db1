-- Items the api serves; in the api's own schema (its role's search_path).
CREATE TABLE items (
    key text PRIMARY KEY CHECK (key ~ '^[A-Za-z0-9_.-]{1,100}$'),
    value jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX items_updated_at ON items (updated_at DESC);
