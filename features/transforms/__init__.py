"""Pure feature transforms: behavior and text windows as of snapshot timestamps."""
