"""`mhsft train --rehearse`: the real `swift sft` of a recipe, changed only to reach its risky moments fast."""
