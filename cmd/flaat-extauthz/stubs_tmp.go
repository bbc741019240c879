package main

import "github.com/spf13/cobra"

func (a *app) userinfoCmd() *cobra.Command { return &cobra.Command{Use: "userinfo"} }
func (a *app) checkCmd() *cobra.Command    { return &cobra.Command{Use: "check"} }
func (a *app) demoCmd() *cobra.Command     { return &cobra.Command{Use: "demo"} }
