// Package compat holds the flaat-compatibility suite (compat_test.go): the policy test
// cases of flaat 1.2.1 (flaat/tests/requirements_test.py, the decorator parametrisation
// the aio/fastapi/Flask tests share, the Flask example's cases, the environment-override
// tests) and the tables of KIT-SCC's AarcEntitlement 1.0.5, translated to this project's
// configuration and claims and run through the path of `flaat-extauthz check` (package
// explain). It prints
//
//	flaat-compat: N cases, P pass, D documented differences
//
// and fails on any other outcome. Every documented difference is explained in
// docs/flaat-compat.md. Only the cases' data was translated; no flaat code is here.
//
// The package has no non-test code.
package compat
