"""The servable model: bundle, preprocessing, action policy, tree walker, runners, registry and alias moves."""
